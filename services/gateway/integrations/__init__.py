"""Integrations an org can install and the tools they bring: the catalog, custom definitions, installs,
tool modes and pinning, upstream OAuth sign-in and the operator's local servers."""
