"""Debian's nginx with lua-nginx-module (libnginx-mod-http-lua) as the reference for
the Lua tests: the same http-block content under both, answers compared.

nginx loads the NDK and the Lua module from Debian's module folder; lua-resty-core
(Debian's lua-resty-core, in the default package path) provides `ngx.semaphore`.
"""

import reference_nginx

MODULES = ("load_module /usr/lib/nginx/modules/ndk_http_module.so; "
           "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so; ")


class LuaNginx(reference_nginx.Nginx):
    """reference_nginx.Nginx with the Lua module loaded (on the first line, so the
    http content still starts on line 3)."""

    def configure(self, http):
        path = super().configure(http)
        self.conf_text = MODULES + self.conf_text
        path.write_text(self.conf_text)
        return path


def start(tmp_path, http):
    reference_nginx.require()
    n = LuaNginx(tmp_path / "nginx")
    n.configure(http)
    return n.start()
