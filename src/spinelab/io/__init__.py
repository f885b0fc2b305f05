"""Reading and writing: CT volumes, centroid files, label maps and dataset layouts."""
