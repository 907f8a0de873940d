"""The Pulumi program: validated stack settings and the function that builds the whole stack from them."""
