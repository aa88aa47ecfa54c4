"""The KUMKM web console: one server-rendered site for every person who works with the platform.

It holds no business state: every page calls the services' HTTP APIs with the signed-in person's token.
"""
