"""Input feeds for the onnxruntime bench scripts: `name=path.npy` or, positionally, `path.npy`
for the graph's k-th input; and the session options they share."""

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


def sequential_options(threads, profile_prefix=None):
    """onnxruntime session options: `threads` intra-op threads, one inter-op, sequential; the
    profiler on, writing under `profile_prefix`, when one is given."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return opts
