"""Operations: metrics, health checks and alerts."""
