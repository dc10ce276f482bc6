"""cellbox.runtime"""
