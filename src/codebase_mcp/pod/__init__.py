"""The pod: render the stack for ``podman kube play`` or Kubernetes, bring it up and down.

Pure planning (``features``, ``models``, ``render``, ``status``, ``clientconfig``,
``systemd``) is kept apart from the thin layer that runs podman (``podman``,
``lifecycle``), so every spec and argv can be unit tested without podman.
"""
