"""The generated modules of runtime.proto (make layotto-proto); not edited by hand."""
