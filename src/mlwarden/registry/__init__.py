"""The model registry: models, versions, stages, promotion policy and gates, rollback."""
