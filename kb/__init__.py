"""The service catalogue: categories, districts, clusters, platforms and institutions."""
