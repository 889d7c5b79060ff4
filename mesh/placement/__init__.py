"""Actor placement without a placement service: which sidecar hosts an actor (mesh/placement/base.py).

``factory.build_placement(name_resolution settings)`` gives the placement of the store the sidecars
share (local.py alone, redis.py, etcd.py; leased.py holds what the last two share; ring.py is a
type's table). The actor runtime's way through it:

1. ``await placement.start(app_id, address)``, register ``on_change`` and ``on_fenced`` listeners,
   then ``await placement.host(types)`` once the app's ``/dapr/config`` is read (again when it
   changes; an empty set to stop hosting);
2. per call, ``await placement.lookup(type, id)``: this sidecar's address (activate here), another
   (forward), or None (no sidecar hosts the type);
3. before activating, ``await placement.claim(type, id)``: False while another live sidecar holds
   the actor (it is moving: try again shortly) or while this one is fenced; after deactivating,
   ``await placement.release(type, id)``;
4. ``on_change``: deactivate, then release, the actors ``lookup`` no longer places here;
   ``on_fenced``: end every local activation at once (their claims are gone already);
5. ``await placement.aclose()`` at shutdown, after draining.

``lookup`` (a type's first) and ``claim`` raise :class:`mesh.errors.PlacementUnavailable` when the
store cannot answer. ``describe()`` (and ``status()``, Dapr's ``"placement: connected"``) are for
the metadata API's ``actorRuntime``.
"""
