"""Detection of out-of-distribution and adversarial inputs, the PixelDefend way.

- ``AutoDetector``: a scikit-learn / PyOD-style detector that infers the columns, chooses its
  own exact density model by held-out likelihood, and gives conformal p-values, FDR flags
  and per-column explanations.
- ``Detector``: scores (NLL, likelihood ratio, complexity-corrected), rank p-values
  against calibration data, a threshold for a target false-positive rate, decisions;
  saved and loaded without pickle.
- ``TypicalityTest``: the batch test of Nalisnick et al. (2019).
- ``surprisal``: per-element bits (where a record is anomalous), per-variable shares.
- ``purify``: PixelDefend's greedy purification inside an eps-ball, in the model's cached scan.
- ``metrics``, ``plots``, ``attacks``, ``shifts``: AUROC/AUPR/FPR@95, PNG reports, FGSM/PGD
  against small JAX classifiers, shifted image sets for experiments.

See docs/ood.md.
"""

from . import attacks as attacks
from . import conformal as conformal
from . import metrics as metrics
from . import plots as plots
from . import shifts as shifts
from .auto import AutoDetector as AutoDetector
from .auto import Explanation as Explanation
from .complexity import complexity_bits as complexity_bits
from .conformal import benjamini_hochberg as benjamini_hochberg
from .conformal import conformal_p_values as conformal_p_values
from .detector import CORRECTIONS as CORRECTIONS
from .detector import Detection as Detection
from .detector import Detector as Detector
from .detector import fit_background as fit_background
from .detector import fuse_scores as fuse_scores
from .detector import fused_components as fused_components
from .detector import perturb as perturb
from .detector import rank_p_values as rank_p_values
from .detector import raw_scores as raw_scores
from .detector import raw_scores_many as raw_scores_many
from .detector import score_detectors as score_detectors
from .metrics import aupr as aupr
from .metrics import auroc as auroc
from .metrics import detection_rate as detection_rate
from .metrics import fpr_at_tpr as fpr_at_tpr
from .purify import purify as purify
from .surprisal import Surprisal as Surprisal
from .surprisal import surprisal as surprisal
from .typicality import TypicalityTest as TypicalityTest
