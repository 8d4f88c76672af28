"""Tools built on the public API: BIF files, Bayesian-network queries, NumPyro interop."""

from .bayesnet import BayesNet as BayesNet
from .bayesnet import LikelihoodWeighting as LikelihoodWeighting
from .bayesnet import likelihood_weighting as likelihood_weighting
from .bayesnet import random_network as random_network
from .bayesnet import random_tables as random_tables
from .bif import BIFError as BIFError
from .bif import read_bif as read_bif
from .bif import write_bif as write_bif
