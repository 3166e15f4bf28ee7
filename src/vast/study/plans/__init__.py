"""Study plans shipped with vast (YAML)."""
