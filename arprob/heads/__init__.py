"""Heads: the distribution of an element given its parameters."""

from ..spec.registry import kinds
from .base import Head as Head
from .logistic_mixture import DiscretizedLogisticMixture as DiscretizedLogisticMixture
from .logistic_mixture import GaussianMixture as GaussianMixture
from .logistic_mixture import LogisticMixture as LogisticMixture
from .numpyro_head import NumPyroHead as NumPyroHead
from .simple import Bernoulli as Bernoulli
from .simple import Categorical as Categorical  # deprecated alias of CategoricalHead
from .simple import CategoricalHead as CategoricalHead
from .simple import Gaussian as Gaussian
from .simple import default_head as default_head

#: Heads by ``kind``, as spec files name them: the live registry table (a head class that
#: sets ``kind`` enters it when defined, see ``arprob.spec.registry``).
HEAD_KINDS: dict[str, type[Head]] = kinds("head")
