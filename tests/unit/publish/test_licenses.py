from __future__ import annotations

from codebase_mcp.publish import licenses
from tests.unit.publish.conftest import DEP5


def test_debian_short_names_map_to_spdx_ids() -> None:
    assert licenses.debian_to_spdx("GPL-2+") == "GPL-2.0-or-later"
    assert licenses.debian_to_spdx("LGPL-2.1+") == "LGPL-2.1-or-later"
    assert licenses.debian_to_spdx("GPL-3") == "GPL-3.0-only"
    assert licenses.debian_to_spdx("Expat") == "MIT"
    assert licenses.debian_to_spdx("bsd-3-clause") == "BSD-3-Clause"
    assert licenses.debian_to_spdx("public-domain") == "LicenseRef-public-domain"
    assert licenses.debian_to_spdx("GPL-2+ with OpenSSL exception") == (
        "LicenseRef-GPL-2-or-later-with-OpenSSL-exception"
    )


def test_every_license_a_dep5_file_names_is_declared() -> None:
    assert licenses.debian_license_names(DEP5) == ["BSD-3-clause", "Expat", "GPL-2+"]
    assert licenses.debian_expression(DEP5) == "BSD-3-Clause AND GPL-2.0-or-later AND MIT"


def test_unknown_or_free_form_copyright_is_noassertion() -> None:
    assert licenses.debian_expression(None) == "NOASSERTION"
    assert licenses.debian_expression("This package was debianized by …\n") == "NOASSERTION"


def test_python_metadata_prefers_license_expression() -> None:
    assert licenses.python_expression({"License-Expression": "Apache-2.0 OR MIT"}) == (
        "Apache-2.0 OR MIT"
    )
    assert licenses.python_expression({"License": "MIT"}) == "MIT"
    assert licenses.python_expression({"License": "see LICENSE.txt"}) == "NOASSERTION"
    assert licenses.license_refs("MIT AND LicenseRef-a-b AND LicenseRef-a-b") == ["LicenseRef-a-b"]
