"""HTTP front processes: more cores parsing HTTP for one node (``[http] workers``).

A front shares the node's client port (SO_REUSEPORT: the kernel spreads connections), serves
the write routes itself (parse, authenticate, validate, encode) and has the node propose the
command over a unix socket in the data dir (``protocol``); every other request is relayed to
the node's own HTTP app on a second unix socket (``proxy``). The node supervises its fronts
(``supervisor``); a front exits when its node goes away.
"""
