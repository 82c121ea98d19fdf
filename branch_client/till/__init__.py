"""The till: the cashier's page, served on 127.0.0.1 by the branch executable.

`core` holds the decisions (which browser command, which requests to refuse, what a cart
or a sale looks like on the wire between page and server), `server` the Starlette app and
its launch, `static/` the page itself (plain HTML, CSS and JavaScript, shipped inside the
package and the executable; nothing is fetched from the internet).
"""
