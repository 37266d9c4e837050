"""The static catalog of the registry (`reestr site -o DIR`): plain HTML, one small script.

It works from the file system (file://): relative links only, the search data is embedded in the
page rather than fetched, and every registry string is HTML-escaped (registry text is untrusted).
"""

from compiler.site.build import build_site

__all__ = ["build_site"]
