"""cellbox.kernel"""
