"""rclpy nodes: thin wrappers that parse messages, call the core and publish."""
