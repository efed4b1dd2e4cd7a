"""ci-gen: versioned GitLab CI/CD components for MLOps and the CLI around them."""

__version__ = "0.3.0"
