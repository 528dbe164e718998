// Texts both backends give when a named object is refused, worded once.
#pragma once

#include <string>

namespace memport {

// 'name', as every named-object message shows it.
std::string QuotedName(const std::string& name);
// createNamed found the name taken: never a silent open of that object.
std::string NamedExistsMessage(const std::string& name);
// The OS refused the access asked for; says how to ask for less.
std::string NamedAccessRefusedMessage(const std::string& name, bool read_only);
// A MESSAGE with a region flagged named reached a connection that did not opt
// in: the NACK text, which the sender's send() shows, so it says what to do.
std::string NamedRegionRefusedMessage();

}  // namespace memport
