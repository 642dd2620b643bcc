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
  optionalAttrs = condition: attrs: if condition then attrs else { };
  hasPrefix = prefix: string: builtins.substring 0 (builtins.stringLength prefix) string == prefix;
  hasSuffix =
    suffix: string:
    let
      start = builtins.stringLength string - builtins.stringLength suffix;
    in
    start >= 0 && builtins.substring start (builtins.stringLength suffix) string == suffix;
  versionAtLeast = version: minimum: builtins.compareVersions version minimum >= 0;
  assertMsg = condition: message: condition || throw message;
}
