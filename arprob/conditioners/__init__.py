"""Conditioners: how each element's parameters are computed from earlier elements."""

from ..spec.registry import kinds

from .base import ConditionalSpec as ConditionalSpec
from .base import Conditioner as Conditioner
from .base import ConditionerContext as ConditionerContext
from .linear_gaussian import LinearGaussian as LinearGaussian
from .linear_gaussian import LinearGaussianConditioner as LinearGaussianConditioner
from .linear_gaussian import gaussian_moments as gaussian_moments
from .logistic import Logistic as Logistic
from .logistic import LogisticConditioner as LogisticConditioner
from .made import MADE as MADE
from .made import MADEConditioner as MADEConditioner
from .pixelcnn import PixelCNN as PixelCNN
from .pixelcnn import PixelCNNConditioner as PixelCNNConditioner
from .rnn import RNN as RNN
from .rnn import RNNConditioner as RNNConditioner
from .table import Table as Table
from .table import TableConditioner as TableConditioner
from .transformer import Transformer as Transformer
from .transformer import TransformerConditioner as TransformerConditioner
from .wavenet import WaveNet as WaveNet
from .wavenet import WaveNetConditioner as WaveNetConditioner

#: Conditional families by ``kind``, as spec files name them: the live registry table (a
#: family that sets ``kind`` enters it when defined, see ``arprob.spec.registry``).
CONDITIONAL_KINDS: dict[str, type[ConditionalSpec]] = kinds("conditional")

