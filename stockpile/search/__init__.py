"""Search: declare configuration spaces as arrays, evaluate them vectorised, keep what meets the targets."""
