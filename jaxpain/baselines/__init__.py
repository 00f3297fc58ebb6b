"""PyTorch reference implementations (parity tests, baseline benchmarks).

Import these modules only where torch is installed; nothing in
`jaxpain.models` depends on them.
"""
