# The few nixpkgs `lib` functions the flake uses, with nixpkgs' semantics.
{
  genAttrs =
    names: f:
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );
  mapAttrs = builtins.mapAttrs;
  hasPrefix = prefix: string: builtins.substring 0 (builtins.stringLength prefix) string == prefix;
  versionAtLeast = version: minimum: builtins.compareVersions version minimum >= 0;
  assertMsg = condition: message: condition || throw message;
}
