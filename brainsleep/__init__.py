"""brainsleep: Sleep Replay Consolidation for ANNs, simulated with Brian2."""

import warnings

# Brian2 2.8 imports a private distutils helper on Linux too; the warning is noise here.
warnings.filterwarnings("ignore", message="_get_vc_env is private")

__version__ = "0.1.0"
