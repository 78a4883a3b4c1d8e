"""druid"""
