"""What each command does, by family. The parser (:mod:`hotpatch_cli.main`) maps flags onto these.

- :mod:`~hotpatch_cli.commands.account`: ``login``;
- :mod:`~hotpatch_cli.commands.signing`: signing keys and trust roots;
- :mod:`~hotpatch_cli.commands.publish`: ``release``;
- :mod:`~hotpatch_cli.commands.channels`: ``rollback``, ``promote``, ``rollout``, ``releases``;
- :mod:`~hotpatch_cli.commands.patches`: ``patch``, ``embedded register``;
- :mod:`~hotpatch_cli.commands.expo`: serving releases to expo-updates;
- :mod:`~hotpatch_cli.commands.deployment_keys`: CodePush deployment keys;
- :mod:`~hotpatch_cli.commands.common`: the lookups several of them share.
"""
