"""The message model: resources, IDs and the Mesos domain types with their v1 JSON shapes."""
