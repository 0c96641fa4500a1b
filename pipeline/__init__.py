"""kafka-forensics: explain Kafka produce tail latency from a broker's artifact bundle."""

__version__ = "0.1.0"
