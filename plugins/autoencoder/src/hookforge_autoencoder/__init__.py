"""hookforge-autoencoder: an autoencoder assembled from parts chosen by name.

``model.encoder``, ``model.decoder`` and ``model.latent`` are sub-components (kinds declared in
this package's ``hookforge.kinds`` entry points): ``mlp`` and ``conv`` encoders and decoders;
``none``, ``linear``, ``vq`` (vector-quantize-pytorch) and ``vae`` latent spaces. The ``ae`` loop is
hookforge-torch's training engine; the ``reconstruction`` evaluator scores reconstructions, code
usage and anomaly detection. Component modules import torch inside functions only.
"""
