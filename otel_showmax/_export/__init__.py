"""What runs on the export threads: batch worker, span processor, exporter factory, OTLP over HTTP
and gRPC, protobuf encoding, UTF-8 escaping."""
