"""edge-convert: the SavedModel as LiteRT (.tflite) models, each measured against it.

samples (the project's loader: representative and held-out sets), variants (the three
conversions), measure (SavedModel and LiteRT predictions, latency), gate (the parity checks),
table (the markdown section of the MR report), cache (measurements of an unchanged model),
convert (the whole job: edge.json, the .tflite files, the section).
TensorFlow and ai-edge-litert are imported inside functions only.
"""
