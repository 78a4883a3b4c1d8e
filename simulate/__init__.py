"""Synthetic click-stream traffic with ground truth, and the accuracy report built on it.

- :mod:`simulate.population`: who visits: user agents, client networks, the site graph,
  referrers and campaigns;
- :mod:`simulate.plan`: a deterministic (seeded) stream of parties, each with its requests,
  the events in them and the sessions the pipeline is expected to find;
- :mod:`simulate.traffic`: sends a plan to a real collector over HTTP at a given rate and
  writes the ground truth of what was accepted;
- :mod:`simulate.truth`: the ground-truth file format;
- :mod:`simulate.evaluate`: reads the pipeline's outputs and scores them against the truth.

See docs/simulate.md.
"""
