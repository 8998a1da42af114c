// Placeholder until auth lands (helper).
