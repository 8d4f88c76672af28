"""arprob: declare autoregressive probability models and compile them to exact JAX densities."""

from . import heads as heads
from .conditioners import Logistic as Logistic
from .conditioners import Table as Table
from .errors import DataError as DataError
from .errors import SpecError as SpecError
from .heads import Bernoulli as Bernoulli
from .heads import Gaussian as Gaussian
from .model import Model as Model
from .model import compile as compile
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
from .train import fit as fit

__version__ = "0.1.0"
