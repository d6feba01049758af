#pragma once
// Placeholder: the interface lands with issue 14's parts.
