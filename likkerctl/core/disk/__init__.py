"""When does the broker's disk fill: the forecast's data (`figures`), its maths (`forecast`,
numpy), and where its samples come from (`sources`: Prometheus, or likkerctl's own
`sampler`)."""
