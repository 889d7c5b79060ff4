"""An example state store packaged outside l8 (the type ``state.example``)."""
