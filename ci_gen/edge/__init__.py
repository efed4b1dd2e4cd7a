"""edge-convert: the SavedModel as LiteRT (.tflite) models, each measured against it.

samples (the project's loader: representative and held-out sets), variants (the three
conversions), measure (SavedModel and LiteRT predictions, latency), gate (the parity checks),
table (edge.json, the markdown section of the MR report), convert (the whole job).
TensorFlow and ai-edge-litert are imported inside functions only.
"""
