"""Glance v2, only what generic clients look up: image names for server lists.

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import urllib.parse


class GlanceApi:
    def glance_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        return [
            ("GET", r"/image/?", "image", None, self.image_versions),
            ("GET", r"/image/v2/images", "image", "glance.list_images", self.list_images),
            ("GET", r"/image/v2/images/(?P<id>[^/]+)", "image", "glance.get_image", self.get_image),
        ]

    def image_versions(self, req):
        return 300, {"versions": [{"id": "v2.15", "status": "CURRENT",
                                   "links": [{"rel": "self", "href": f"{self.base()}/image/v2/"}]}]}, {}

    def image_view(self, id_, name):
        t = "2026-01-01T00:00:00Z"
        return {"id": id_, "name": name, "status": "active", "visibility": "public", "protected": False,
                "disk_format": "qcow2", "container_format": "bare", "min_disk": 0, "min_ram": 0,
                "size": 2147483648, "checksum": None, "os_hidden": False, "owner": self.cloud.project["id"],
                "tags": [], "created_at": t, "updated_at": t, "self": f"/v2/images/{id_}",
                "file": f"/v2/images/{id_}/file", "schema": "/v2/schemas/image"}

    def list_images(self, req):
        # Glance compares most image attributes exactly (name=, status=, visibility=); the
        # "first" link repeats the filters, as Glance's does.
        name, status = req.q("name"), req.q("status")
        images = [self.image_view(i, n) for i, n in self.cloud.images.items()
                  if (name is None or n == name) and (status is None or status == "active")]
        query = urllib.parse.urlencode([(k, v) for k, v in (("name", name), ("status", status)) if v is not None])
        return 200, {"images": images, "first": "/v2/images" + (f"?{query}" if query else ""),
                     "schema": "/v2/schemas/images"}, {}

    def get_image(self, req, id):
        if id not in self.cloud.images:
            return 404, b"<html><body><h1>404 Not Found</h1>No image found with ID %s</body></html>" % id.encode(), \
                {"Content-Type": "text/html; charset=UTF-8"}
        return 200, self.image_view(id, self.cloud.images[id]), {}
