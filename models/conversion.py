"""ANN-to-SNN conversion protocols of SNN evaluation (``--snn-protocol``), as data.

SNN evaluation classifies test images with the spiking network of a trained (or slept)
ANN, built from the sleep model's own equations (``models/src.py``) with plasticity off.
A protocol says how the ANN becomes that spiking network: the values of the model's
declared parameters, how the layer scales (alphas) are found, and which reset is used.

- ``sleep``: the sleep phase's own conversion (its alphas, thresholds and input rate),
  the question "what does the network the sleep ran on classify?". Those parameters were
  chosen for sparse replay, not for classification.
- ``diehl2015``: the conversion of Diehl, Neil, Binas, Cook, Liu & Pfeiffer (IJCNN 2015,
  "Fast-classifying, high-accuracy spiking deep networks through weight and threshold
  balancing"; code: dannyneil/spiking_relu_conversion, ``normalize_nn_data.m``,
  ``nnlifsim.m`` and the README's fully connected example): data-based normalisation
  (each layer scaled by the largest weight or test-mode activation, the same code and
  the same ``prev = f`` quirk as the SRC reference, which grew out of it), unit
  thresholds, no decay, reset to zero, no refractory period, Poisson input with
  P(spike) = pixel intensity per 1 ms step (their ``max_rate = 1000`` Hz), the class of
  the output neuron with most spikes. They report 98.5-98.8 % on MNIST for this very
  784-1200-1200-10 network within a few tens of milliseconds.
- ``diehl2015_textbook``: the same, but each layer's scale divided by the previous
  layer's own scale (lambda_l / lambda_(l-1), the normalisation as Rueckauer et al. 2017
  write it) instead of by the previous *applied* factor. With the quirk the third
  layer's weights come out divided by the first layer's scale lambda_1 once more
  (lambda_3 lambda_1 / lambda_2 instead of lambda_3 / lambda_2); the two agree only where
  lambda_1 is about 1. Diehl's dropout-trained network (lambda_1 ~ 1.6) converts with
  either; the strong recipe's (Adam, cross-entropy, lambda_1 ~ 12.6) has an output layer
  ~12.6 times too weak with the quirk and is ~35 % silent after 100 steps
  (docs/results/conversion_fidelity.md).

Options the field adds (``--snn-reset``, ``--snn-percentile``):
- reset by subtraction (Rueckauer, Lungu, Hu, Pfeiffer & Liu 2017, Front. Neurosci.
  11:682): the charge above threshold is kept, so a neuron's rate tracks its activation
  without the loss of the surplus;
- percentile normalisation (Rueckauer et al. 2017): the p-th percentile (99.9) of the
  positive activations instead of the maximum, robust to rare outliers.
"""

#: The Diehl et al. (2015) conversion in the names ``models/src.py`` declares (and every
#: model that keeps its INPUT and NEURON, e.g. ``src_additive.py``). The input of
#: models/src.py spikes with P = min(1, 2 dt max_rate x) (the SRC reference's factor 2),
#: so max_rate = 500 Hz is Diehl's 1000 Hz: P(spike) = x at dt = 1 ms.
DIEHL2015 = {
    "parameters": {"max_rate": 500.0, "v_thresh": 1.0, "decay": 1.0, "inc": 0.0, "dec": 0.0},
    "alpha_scale": 1.0,  # the alphas are the normalisation's, unscaled
    "quirk": True,  # normalize_nn_data.m keeps prev = f, as the SRC reference does
}

#: Diehl et al.'s conversion with the layer-wise normalisation of the textbook.
DIEHL2015_TEXTBOOK = {**DIEHL2015, "quirk": False}

#: Protocols by name; ``sleep`` takes everything from the sleep phase (no entry needed).
PROTOCOLS = {"sleep": None, "diehl2015": DIEHL2015, "diehl2015_textbook": DIEHL2015_TEXTBOOK}

#: Resets an SNN evaluation may use (``--snn-reset``): ``zero`` is the model's own
#: NEURON["reset"] (v = 0, Diehl et al. 2015); ``subtraction`` replaces it.
RESETS = {"zero": None, "subtraction": "v = v - v_thresh"}

#: The percentile of the field (Rueckauer et al. 2017), the suggested --snn-percentile.
FIELD_PERCENTILE = 99.9
