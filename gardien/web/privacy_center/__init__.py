"""The privacy center: public pages where a person files a request, proves their address, follows it
and downloads the result."""

from gardien.web.privacy_center.pages import router

__all__ = ["router"]
