package main

// analysis is the written account of the profiles behind the figures; it
// is part of every report.
const analysis = `## Analysis

(to be written after profiling)
`
