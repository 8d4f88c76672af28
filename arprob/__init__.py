"""arprob: declare autoregressive probability models and compile them to exact JAX densities."""

from . import _interrupt

if _interrupt.is_command_line():  # Ctrl-C while JAX imports: one line, exit 130 (arprob/_interrupt.py)
    _interrupt.install()

from . import heads as heads
from . import ood as ood
from .budget import memory_budget as memory_budget
from .budget import set_memory_budget as set_memory_budget
from .checkpoint import CheckpointError as CheckpointError
from .checkpoint import load_checkpoint as load_checkpoint
from .checkpoint import save_checkpoint as save_checkpoint
from .conditioners import MADE as MADE
from .conditioners import RNN as RNN
from .conditioners import LinearGaussian as LinearGaussian
from .conditioners import Logistic as Logistic
from .conditioners import PixelCNN as PixelCNN
from .conditioners import Table as Table
from .conditioners import Transformer as Transformer
from .conditioners import WaveNet as WaveNet
from .data import BatchStream as BatchStream
from .data import load_array as load_array
from .ensembles import ensemble_log_prob as ensemble_log_prob
from .ensembles import ensemble_sample as ensemble_sample
from .ensembles import fit_order_agnostic as fit_order_agnostic
from .ensembles import member_model as member_model
from .errors import ArprobError as ArprobError
from .errors import DataError as DataError
from .errors import SpecError as SpecError
from .evaluate import Evaluation as Evaluation
from .evaluate import evaluate as evaluate
from .heads import Bernoulli as Bernoulli
from .heads import CategoricalHead as CategoricalHead
from .heads import DiscretizedLogisticMixture as DiscretizedLogisticMixture
from .heads import Gaussian as Gaussian
from .heads import GaussianMixture as GaussianMixture
from .heads import LogisticMixture as LogisticMixture
from .interop import numpyro_dist as numpyro  # noqa: F401  (ar.numpyro; does not shadow the numpyro package)
from .interop.bif import read_bif as read_bif
from .interop.bif import write_bif as write_bif
from .model import Model as Model
from .model import compile as compile
from .model import flat_log_prob as flat_log_prob
from .model import flat_log_prob_terms as flat_log_prob_terms
from .model import flat_sample as flat_sample
from .plotting import plot_history as plot_history
from .spec.layout import compute_steps as compute_steps
from .spec.orderings import ByVariable as ByVariable
from .spec.orderings import Columns as Columns
from .spec.orderings import EvenOdd as EvenOdd
from .spec.orderings import Explicit as Explicit
from .spec.orderings import RandomOrder as RandomOrder
from .spec.orderings import Raster as Raster
from .spec.orderings import Reverse as Reverse
from .spec.orderings import Snake as Snake
from .spec.orderings import Zigzag as Zigzag
from .spec.partitions import ExplicitBlocks as ExplicitBlocks
from .spec.partitions import FixedSize as FixedSize
from .spec.partitions import PerPixel as PerPixel
from .spec.partitions import PerRow as PerRow
from .spec.partitions import PerVariable as PerVariable
from .spec.partitions import Singletons as Singletons
from .spec.serialize import load_spec as load_spec
from .spec.serialize import save_spec as save_spec
from .spec.serialize import spec_from_dict as spec_from_dict
from .spec.serialize import spec_to_dict as spec_to_dict
from .spec.spec import Spec as Spec
from .spec.variables import Binary as Binary
from .spec.variables import Categorical as Categorical
from .spec.variables import Ordinal as Ordinal
from .spec.variables import Real as Real
from .train import FitResult as FitResult
from .train import History as History
from .train import NonFiniteLossError as NonFiniteLossError
from .train import StepInfo as StepInfo
from .train import fit as fit

__version__ = "0.1.0"
