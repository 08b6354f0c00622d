"""The embedded OTLP receiver: HTTP and gRPC servers, storage, decoding, a child-process runner and fault modes."""
