"""Input feeds for the onnxruntime bench scripts: `name=path.npy` or, positionally, `path.npy`
for the graph's k-th input."""

import numpy as np


def load_feeds(names, specs):
    feeds = {}
    for k, spec in enumerate(specs):
        if "=" in spec and spec.split("=", 1)[0] in names:
            name, path = spec.split("=", 1)
        else:
            name, path = names[k], spec
        feeds[name] = np.load(path)
    return feeds
