"""The archive's operations, free of any transport: HTTP transactions, the CLI and a DIMSE
gateway all call these with a store context, and map their domain errors to their own."""
