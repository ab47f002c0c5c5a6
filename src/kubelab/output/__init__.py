"""How results are shown: the terminal, JSON and JUnit reports."""
