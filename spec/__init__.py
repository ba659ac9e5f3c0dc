"""The executable model of the Linux v6.8 TDX host initialisation (arch/x86/virt/vmx/tdx/tdx.c).

Pure Python, deterministic, no I/O and no solver: each function names the kernel function it
mirrors, so the model can be read side by side with the kernel source.
"""
