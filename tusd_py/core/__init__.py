"""The upload record and the tus service: models, errors, config, protocol, service, append path."""
