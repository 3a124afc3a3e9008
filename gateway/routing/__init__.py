"""Services and routes: Kong's declarative file, the router, and the route table the app uses."""
