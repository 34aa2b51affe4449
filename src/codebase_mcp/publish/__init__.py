"""Publishing built images: push by digest, SBOMs checked against the image, gc.

Planning (argv lists, SBOM documents, what gc removes) is pure; ``run`` and the
``*_apply`` functions are the thin layers that call podman/skopeo.
"""
